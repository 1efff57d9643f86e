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


def _block(cin, cout, batch_norm):
    layers = []
    for a, b in ((cin, cout), (cout, cout)):
        layers.append(nn.Conv2d(a, b, 3, padding=1, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(b))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class UNetPlusPlus(nn.Module):
    """U-Net++ as build_unetpp of peers.py (same names), with batch norm and bilinear
    up-sampling as options. forward returns the heads' logits (one per column with deep
    supervision); unet predict: the mean of their softmax, or one head when pruned."""

    def __init__(self, depth=4, base_width=64, up_mode="transposed", batch_norm=False, deep_supervision=True,
                 input_channels=1, classes=2):
        super().__init__()
        w = [base_width * 2 ** i for i in range(depth + 1)]
        self.nodes = [(i, j) for j in range(1, depth + 1) for i in range(depth + 1 - j)]
        self.bilinear = up_mode == "bilinear"
        self.down = nn.ModuleList([_block(input_channels if i == 0 else w[i - 1], w[i], batch_norm) for i in range(depth + 1)])
        node = []
        for i, j in self.nodes:
            m = nn.Module()
            m.up = nn.ConvTranspose2d(w[i + 1], w[i], 2, stride=2) if not self.bilinear else nn.Conv2d(w[i + 1], w[i], 1)
            m.block = _block((j + 1) * w[i], w[i], batch_norm)
            node.append(m)
        self.node = nn.ModuleList(node)
        self.head = nn.ModuleList([nn.Conv2d(w[0], classes, 1) for _ in range(depth if deep_supervision else 1)])
        self.depth, self.deep_supervision = depth, deep_supervision

    def forward(self, x):
        X = {}
        for i, blk in enumerate(self.down):
            x = blk(x if i == 0 else F.max_pool2d(x, 2))
            X[i, 0] = x
        for (i, j), n in zip(self.nodes, self.node):
            u = n.up(X[i + 1, j - 1])
            if self.bilinear:
                u = F.interpolate(u, scale_factor=2, mode="bilinear", align_corners=False)
            X[i, j] = n.block(torch.cat([X[i, k] for k in range(j)] + [u], 1))
        tops = [X[0, j] for j in range(1, self.depth + 1)] if self.deep_supervision else [X[0, self.depth]]
        return [h(t) for h, t in zip(self.head, tops)]


class UNet3Plus(nn.Module):
    """UNet 3+ as build_unet3p of peers.py (same names), for any depth. forward returns the
    heads' logits (up-sampled to full size) and the CGM's probabilities (N × 2) or None;
    unet predict: head 0's sigmoid (K = 1, as 1 − p, p) or softmax, times [q1 > q0]."""

    def __init__(self, depth=4, base_width=64, deep_supervision=True, cgm=True, cgm_dropout=0.5, input_channels=1, classes=1):
        super().__init__()
        D, C = depth, base_width
        w = [C * 2 ** i for i in range(D + 1)]
        up = (D + 1) * C

        def cbr(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

        self.enc = nn.ModuleList([nn.Sequential(cbr(input_channels if i == 0 else w[i - 1], w[i]), cbr(w[i], w[i]))
                                  for i in range(D + 1)])
        dec = {}
        for d in range(D - 1, -1, -1):
            m = nn.Module()
            m.src = nn.ModuleList([cbr(w[s] if s <= d or s == D else up, C) for s in range(D + 1)])
            m.fuse = cbr(up, up)
            dec[str(d)] = m
        self.dec = nn.ModuleDict(dec)
        self.head = nn.ModuleList([nn.Conv2d(up if d < D else w[D], classes, 3, padding=1)
                                   for d in (range(D + 1) if deep_supervision else [0])])
        self.cgm = nn.Sequential(nn.Dropout(cgm_dropout), nn.Conv2d(w[D], 2, 1), nn.AdaptiveMaxPool2d(1), nn.Sigmoid()) if cgm else None
        self.D = D

    def forward(self, x):
        D = self.D
        E = []
        for i, blk in enumerate(self.enc):
            x = blk(x if i == 0 else F.max_pool2d(x, 2))
            E.append(x)
        M = {D: E[D]}
        for d in range(D - 1, -1, -1):
            m = self.dec[str(d)]
            parts = []
            for s, conv in enumerate(m.src):
                if s < d:
                    t = F.max_pool2d(E[s], 2 ** (d - s))
                elif s == d:
                    t = E[d]
                else:
                    t = F.interpolate(M[s], scale_factor=2 ** (s - d), mode="bilinear", align_corners=False)
                parts.append(conv(t))
            M[d] = m.fuse(torch.cat(parts, 1))
        outs = []
        for d, h in enumerate(self.head):
            z = h(M[d])
            outs.append(F.interpolate(z, scale_factor=2 ** d, mode="bilinear", align_corners=False) if d > 0 else z)
        return outs, (self.cgm(E[D]).flatten(1) if self.cgm is not None else None)


def prediction(model, architecture, x, inference=None):
    """What unet predict computes from the module's outputs."""
    with torch.no_grad():
        if architecture == "unet":
            return model(x).softmax(1)
        if architecture == "unetpp":
            outs = model(x)
            if inference and inference.get("heads") == "prune":
                p = inference["prune_depth"]
                return outs[p - 1 if model.deep_supervision else 0].softmax(1)
            return torch.stack([o.softmax(1) for o in outs]).mean(0)
        outs, q = model(x)
        z = outs[0]
        p = torch.sigmoid(z) if z.shape[1] == 1 else z.softmax(1)
        if q is not None:
            p = p * (q[:, 1] > q[:, 0]).float()[:, None, None, None]
        return torch.cat([1 - p, p], 1) if p.shape[1] == 1 else p


MODULES = {"unet": UNet, "unetpp": UNetPlusPlus, "unet3p": UNet3Plus}
