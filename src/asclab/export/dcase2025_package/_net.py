"""CP-Mobile (the DCASE 2024/2025 task 1 baseline network) and a per-device container."""
import torch
import torch.nn as nn


def make_divisible(value, divisor=8):
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def conv_bn(cin, cout, k, stride=1, groups=1, act=True):
    layers = [nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class Block(nn.Module):
    def __init__(self, cin, cout, expansion, stride):
        super().__init__()
        hidden = make_divisible(cin * expansion, 8)
        self.block = nn.Sequential(conv_bn(cin, hidden, 1), conv_bn(hidden, hidden, 3, stride, hidden),
                                   conv_bn(hidden, cout, 1, act=False))
        self.use_shortcut = cin == cout
        strided = tuple(stride) != (1, 1)
        self.shortcut = nn.AvgPool2d(3, stride=stride, padding=1) if self.use_shortcut and strided else nn.Identity()
        self.act = nn.ReLU()

    def forward(self, x):
        y = self.block(x)
        if self.use_shortcut:
            y = y + self.shortcut(x)
        return self.act(y)


class CPMobile(nn.Module):
    def __init__(self, arch):
        super().__init__()
        strides = {int(i): (int(f), int(t)) for i, f, t in arch["strides"]}
        base = make_divisible(arch["base_channels"], 8)
        widths = [make_divisible(base * arch["channels_multiplier"] ** s, 8)
                  for s in range(len(arch["blocks_per_stage"]))]
        self.stem = nn.Sequential(conv_bn(arch["in_chans"], base // 4, 3, 2), conv_bn(base // 4, base, 3, 2))
        blocks, chans, index = [], base, 0
        for width, n in zip(widths, arch["blocks_per_stage"]):
            for _ in range(n):
                index += 1
                blocks.append(Block(chans, width, arch["expansion"], strides.get(index, (1, 1))))
                chans = width
        self.stages = nn.Sequential(*blocks)
        self.classifier = conv_bn(chans, arch["num_classes"], 1, act=False)

    def forward(self, x):
        return self.classifier(self.stages(self.stem(x))).mean(dim=(2, 3))


class DeviceModels(nn.Module):
    """The general model and one model per training device."""

    def __init__(self, arch, devices):
        super().__init__()
        self.base = CPMobile(arch)
        self.device_models = nn.ModuleDict({d: CPMobile(arch) for d in devices})

    def get_model_for_device(self, device_id):
        return self.device_models[device_id] if device_id in self.device_models else self.base
