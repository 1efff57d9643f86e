"""The reference PyTorch module of swift-unet's U-Net (README, "Export").

`unet export CKPT --format safetensors` writes this module's state_dict; the network
configuration is in the file's metadata ("network", the keys below):

    from safetensors import safe_open
    from safetensors.torch import load_file
    import json
    with safe_open("last.safetensors", "pt") as f:
        cfg = json.loads(f.metadata()["network"])
    model = UNet(**{k: v for k, v in cfg.items() if k not in ("version", "architecture")})
    model.load_state_dict(load_file("last.safetensors"))
    probabilities = model.eval()(x).softmax(1)   # x normalised as metadata "normalization" says

It generalises build_unet of ../shared/bench/peers.py (whose default, transposed up-sampling
without batch norm, has the same parameter names).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


class UNet(nn.Module):
    def __init__(self, depth=4, base_width=64, padding="valid", up_mode="transposed", batch_norm=False,
                 dropout=0.0, input_channels=1, classes=2):
        super().__init__()
        pad = 1 if padding == "same" else 0

        def block(cin, cout):
            layers = []
            for a, b in ((cin, cout), (cout, cout)):
                layers.append(nn.Conv2d(a, b, 3, padding=pad, bias=not batch_norm))
                if batch_norm:
                    layers.append(nn.BatchNorm2d(b))
                layers.append(nn.ReLU(inplace=True))
            return nn.Sequential(*layers)

        w = [base_width * 2 ** i for i in range(depth + 1)]
        self.down = nn.ModuleList([block(input_channels if i == 0 else w[i - 1], w[i]) for i in range(depth + 1)])
        self.up = nn.ModuleList([nn.ConvTranspose2d(w[i + 1], w[i], 2, stride=2) if up_mode == "transposed"
                                 else nn.Conv2d(w[i + 1], w[i], 1) for i in range(depth)])
        self.upblock = nn.ModuleList([block(2 * w[i], w[i]) for i in range(depth)])
        self.head = nn.Conv2d(w[0], classes, 1)
        self.dropout = nn.Dropout(dropout)
        self.bilinear = up_mode == "bilinear"

    def forward(self, x):
        skips = []
        for i, blk in enumerate(self.down):
            x = blk(x)
            if i < len(self.up):
                skips.append(x)
                x = F.max_pool2d(x, 2)
        x = self.dropout(x)
        for i in reversed(range(len(self.up))):
            x = self.up[i](x)
            if self.bilinear:
                x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            s = skips[i]
            dh, dw = (s.shape[2] - x.shape[2]) // 2, (s.shape[3] - x.shape[3]) // 2
            x = self.upblock[i](torch.cat([s[:, :, dh:dh + x.shape[2], dw:dw + x.shape[3]], x], 1))
        return self.head(x)  # logits; .softmax(1) gives unet predict's probabilities
