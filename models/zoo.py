"""Model definitions for 1x28x28 Fashion-MNIST inputs (pixels in [0,1]) -> 10 logits."""

import torch
import torch.nn as nn
import torch.nn.functional as F


def _conv_bn(cin, cout, k, stride=1, groups=1):
    return [
        nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]


class BasicBlock(nn.Module):
    """Two 3x3 conv+BN layers with identity or 1x1 conv+BN shortcut."""

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(*_conv_bn(cin, cout, 1, stride=stride))
        else:
            self.shortcut = nn.Identity()

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet20(nn.Module):
    """CIFAR-style ResNet-20: 3 stages x 3 BasicBlocks (16/32/64 channels)."""

    def __init__(self, num_classes=10, in_channels=1, blocks_per_stage=3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers = []
        cin = 16
        for i, cout in enumerate((16, 32, 64)):
            for j in range(blocks_per_stage):
                stride = 2 if (i > 0 and j == 0) else 1
                layers.append(BasicBlock(cin, cout, stride))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layers(x)
        x = torch.flatten(self.pool(x), 1)
        return self.fc(x)


class SmallCNN(nn.Module):
    """Two conv+BN+ReLU+maxpool stages followed by a two-layer MLP."""

    def __init__(self, num_classes=10, in_channels=1):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 8, 3, padding=1, bias=False),
            nn.BatchNorm2d(8),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1, bias=False),
            nn.BatchNorm2d(16),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * 7 * 7, 64),
            nn.ReLU(inplace=True),
            nn.Linear(64, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand, 3x3 depthwise, 1x1 linear projection."""

    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hidden = cin * expand
        self.use_residual = stride == 1 and cin == cout
        self.block = nn.Sequential(
            *_conv_bn(cin, hidden, 1),
            nn.ReLU6(inplace=True),
            *_conv_bn(hidden, hidden, 3, stride=stride, groups=hidden),
            nn.ReLU6(inplace=True),
            *_conv_bn(hidden, cout, 1),
        )

    def forward(self, x):
        out = self.block(x)
        return x + out if self.use_residual else out


class MobileNetV2Mini(nn.Module):
    """Reduced MobileNetV2: stride-2 stem, six inverted residual blocks, 1x1 head, GAP, Linear."""

    # (expand, out_channels, stride)
    CONFIG = [
        (4, 24, 1),
        (4, 24, 1),
        (4, 32, 2),
        (4, 32, 1),
        (4, 64, 1),
        (4, 64, 1),
    ]

    def __init__(self, num_classes=10, in_channels=1):
        super().__init__()
        layers = [*_conv_bn(in_channels, 16, 3, stride=2), nn.ReLU6(inplace=True)]
        cin = 16
        for t, c, s in self.CONFIG:
            layers.append(InvertedResidual(cin, c, s, t))
            cin = c
        layers += [*_conv_bn(cin, 128, 1), nn.ReLU6(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(128, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")

    def forward(self, x):
        x = self.features(x)
        x = torch.flatten(self.pool(x), 1)
        return self.fc(x)


class TransformerBlock(nn.Module):
    """Pre-norm transformer block: multi-head self-attention (MatMuls between activations, Softmax) and a GELU MLP."""

    def __init__(self, dim=32, heads=4, hidden=64):
        super().__init__()
        self.n1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.n2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.heads = heads

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.n1(x)).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = (q @ k.transpose(-2, -1)) / (float(d // self.heads) ** 0.5)
        x = x + self.proj((a.softmax(-1) @ v).transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(nn.functional.gelu(self.fc1(self.n2(x))))


class VitTiny(nn.Module):
    """A tiny ViT: 7x7 patches (16 tokens of width 32), learned positions, 2 blocks, LayerNorm, mean pool, Linear."""

    def __init__(self, num_classes=10, in_channels=1, dim=32):
        super().__init__()
        self.patch = nn.Conv2d(in_channels, dim, 7, 7)
        self.pos = nn.Parameter(torch.zeros(1, 16, dim))
        self.blocks = nn.Sequential(TransformerBlock(dim), TransformerBlock(dim))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2) + self.pos
        return self.head(self.norm(self.blocks(x)).mean(1))


class TwoViewCNN(nn.Module):
    """Two inputs: the top and bottom halves of an image, each through its own
    conv branch; the branch features are concatenated and classified."""

    def __init__(self, num_classes=10, in_channels=1):
        super().__init__()

        def branch():
            return nn.Sequential(
                nn.Conv2d(in_channels, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
                nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
                nn.AdaptiveAvgPool2d((1, 7)), nn.Flatten())

        self.top, self.bottom = branch(), branch()
        self.classifier = nn.Sequential(nn.Linear(2 * 16 * 7, 64), nn.ReLU(inplace=True), nn.Linear(64, num_classes))

    def forward(self, top, bottom):
        return self.classifier(torch.cat([self.top(top), self.bottom(bottom)], 1))


def MobileNetV3Small(num_classes=10, in_channels=1):
    """torchvision's mobilenet_v3_small (squeeze-excitation, hard-swish) with a stem for `in_channels` channels."""
    import torchvision

    m = torchvision.models.mobilenet_v3_small(num_classes=num_classes)
    m.features[0][0] = nn.Conv2d(in_channels, 16, 3, 2, 1, bias=False)
    return m


MODELS = {
    "resnet20": ResNet20,
    "mobilenetv3_small": MobileNetV3Small,
    "small_cnn": SmallCNN,
    "mobilenetv2_mini": MobileNetV2Mini,
    "vit_tiny": VitTiny,
    "two_view": TwoViewCNN,
}

# The graph inputs of a model with several; the others take one, "input".
INPUTS = {"two_view": ["top", "bottom"]}


def views(name, x):
    """The inputs of model `name` from a batch of images [N, 1, 28, 28]: the
    image itself, or for two_view its top and bottom 14 rows."""
    if name == "two_view":
        return x[:, :, :14], x[:, :, 14:]
    return (x,)

ARCHITECTURES = {
    "resnet20": "CIFAR-style ResNet-20 (3x3 BasicBlocks, 16/32/64 channels, 1x1 conv+BN downsampling shortcuts, GAP, Linear 64->10)",
    "small_cnn": "conv3x3(1->8)+BN+ReLU, maxpool2, conv3x3(8->16)+BN+ReLU, maxpool2, Linear 784->64, ReLU, Linear 64->10",
    "mobilenetv3_small": "torchvision mobilenet_v3_small (squeeze-excitation with hard-sigmoid gates, hard-swish, 11 inverted residual blocks) with a 1-channel 3x3 stride-2 stem, classifier 576->1024->10",
    "vit_tiny": "ViT: 7x7 patch conv (1->32, 16 tokens), learned positions, 2 pre-norm blocks (4-head attention, GELU MLP 32->64->32), LayerNorm, mean over tokens, Linear 32->10",
    "two_view": "two inputs (top and bottom 14x28 halves), each conv3x3(1->8)+BN+ReLU, maxpool2, conv3x3(8->16)+BN+ReLU, avgpool to 1x7; concat 224, Linear 224->64, ReLU, Linear 64->10",
    "mobilenetv2_mini": "MobileNetV2-style: conv3x3 stride-2 stem (16), 6 inverted residual blocks (expand 4, ReLU6, depthwise 3x3; 24/24/32/32/64/64 channels, stride 2 at the first 32), 1x1 conv 128, GAP, Linear 128->10",
}


def build(name, **kwargs):
    """Instantiate a zoo model by name."""
    try:
        cls = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose from {sorted(MODELS)}") from None
    return cls(**kwargs)


# Lower-case aliases for the model constructors.
resnet20 = ResNet20
small_cnn = SmallCNN
mobilenetv2_mini = MobileNetV2Mini
