"""Writes tests/fixtures/torch_mlp.safetensors with the Python `safetensors`
package, in the layout `torch.save_file(model.state_dict())` produces for

    nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))

(names "0.weight", "0.bias", "2.weight", "2.bias"; weights (out, in);
float32; metadata {"format": "pt"}). The values follow a formula the Rust
test recomputes: element k (row-major) of tensor number t is
0.01 * (k + 1) * (-1) ** (k + t).

Run: python3 -m venv /tmp/st && /tmp/st/bin/pip install safetensors numpy &&
     /tmp/st/bin/python scripts/make_safetensors_fixture.py
"""
import numpy as np
from safetensors.numpy import save_file

shapes = {"0.weight": (4, 3), "0.bias": (4,), "2.weight": (2, 4), "2.bias": (2,)}
tensors = {}
for t, (name, shape) in enumerate(shapes.items()):
    n = int(np.prod(shape))
    k = np.arange(n)
    tensors[name] = (0.01 * (k + 1) * (-1.0) ** (k + t)).astype(np.float32).reshape(shape)
save_file(tensors, "tests/fixtures/torch_mlp.safetensors", metadata={"format": "pt"})
print("wrote", {k: v.shape for k, v in tensors.items()})
