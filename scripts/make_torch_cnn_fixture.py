"""Writes tests/fixtures/torch_cnn.safetensors (a small CNN's state dict,
PyTorch's names) and tests/fixtures/torch_cnn_io.safetensors (an input and
PyTorch's outputs for it), read by tests/conv.rs
(`a_pytorch_cnn_gives_pytorchs_outputs`). The network touches every
convolution layer's options: stride, padding, dilation, non-square
kernels, groups, depthwise, a transposed convolution with output_padding,
batch norm with non-trivial running statistics, max / average / adaptive
pooling, flatten, linear.

Run (PyTorch from PyPI; the committed fixture keeps CI free of it):
    python3 -m venv /tmp/pt && /tmp/pt/bin/pip install torch safetensors &&
    /tmp/pt/bin/python scripts/make_torch_cnn_fixture.py
"""
import torch
from safetensors.torch import save_file
from torch import nn

torch.manual_seed(7)
net = nn.Sequential(
    nn.Conv2d(2, 6, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2)),  # 0
    nn.BatchNorm2d(6),  # 1
    nn.ReLU(),  # 2
    nn.Conv2d(6, 6, 3, padding=1, groups=3),  # 3
    nn.MaxPool2d(2, stride=2, padding=1),  # 4
    nn.ConvTranspose2d(6, 4, 3, stride=2, padding=1, output_padding=1),  # 5
    nn.AvgPool2d(3, stride=1, padding=1),  # 6
    nn.Conv2d(4, 4, 3, padding=2, dilation=2, groups=4),  # 7, depthwise
    nn.Tanh(),  # 8
    nn.AdaptiveAvgPool2d(1),  # 9
    nn.Flatten(1),  # 10
    nn.Linear(4, 3),  # 11
)
# Running statistics away from their initial 0 and 1: a few batches in
# training mode.
with torch.no_grad():
    for k in range(3):
        net(torch.randn(5, 2, 11, 9) * (1 + k) + k)
x = torch.randn(3, 2, 11, 9)
# Copies: the training-mode pass below updates the live buffers in place.
state = {k: v.detach().clone().contiguous() for k, v in net.state_dict().items()}
net.eval()
with torch.no_grad():
    out_eval = net(x)
net.train()
with torch.no_grad():
    out_train = net(x)
io = {
    "input": x,
    "output_eval": out_eval,
    "output_train": out_train,
    "running_mean_after": net[1].running_mean.clone(),
    "running_var_after": net[1].running_var.clone(),
}
save_file(state, "tests/fixtures/torch_cnn.safetensors", metadata={"format": "pt"})
save_file(io, "tests/fixtures/torch_cnn_io.safetensors", metadata={"format": "pt"})
print("wrote", {k: tuple(v.shape) for k, v in {**state, **io}.items()})
