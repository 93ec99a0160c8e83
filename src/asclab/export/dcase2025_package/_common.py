"""The DCASE 2025 task 1 API over a packaged weights file (torch, numpy, soundfile only)."""
from collections import defaultdict

import torch

from . import _frontend, _net


class Submission(torch.nn.Module):
    """Front end + device models; ``class_order`` names the logit columns."""

    def __init__(self, payload):
        super().__init__()
        self.precision = payload["precision"]
        self.class_order = list(payload["classes"])
        self.front_end = _frontend.LogMel(payload["front_end"], payload["window"], payload["filterbank"])
        self.sample_rate = int(payload["front_end"]["sample_rate"])
        self.model = _net.DeviceModels(payload["arch"], payload["devices"])
        models = payload["models"]
        self.model.base.load_state_dict(models["base"], strict=True)
        for d in payload["devices"]:
            self.model.device_models[d].load_state_dict(models[d], strict=True)
        self.model.eval()
        if self.precision == "fp16":
            self.model.half()
            _channels_last_if_exact(self.model, int(payload["filterbank"].shape[0]))

    def preprocess(self, wave):
        x = self.front_end(wave)
        return x.half() if self.precision == "fp16" else x


def _channels_last_if_exact(models, n_mels):
    """channels_last memory format for the fp16 networks where every one's output on a probe stays
    equal bit for bit (oneDNN then skips the layout copies around each convolution on the CPU:
    about 49 -> 37 ms per 10-s file at one thread); otherwise they stay contiguous."""
    probe = torch.randn(1, 1, n_mels, 101, generator=torch.Generator().manual_seed(0)).half()
    nets = [models.base, *models.device_models.values()]
    with torch.no_grad():
        refs = [net(probe) for net in nets]
        models.to(memory_format=torch.channels_last)
        same = all(torch.equal(net(probe), ref) for net, ref in zip(nets, refs))
    if not same:
        models.to(memory_format=torch.contiguous_format)
    return same


def load_model(model_file_path):
    payload = torch.load(model_file_path, map_location="cpu", weights_only=True)
    return Submission(payload)


def load_inputs(file_paths, device_ids, model):
    """One input [1, 1, n_mels, frames] per file, each file at its own length."""
    assert len(file_paths) == len(device_ids), "one device id per file"
    dev = next(model.front_end.buffers()).device
    inputs = []
    with torch.no_grad():
        for path in file_paths:
            wave, sr = _frontend.read_mono(path)
            wave = _frontend.resample(wave, sr, model.sample_rate)
            inputs.append(model.preprocess(wave[None].to(dev)).cpu())
    return inputs


def get_model_for_device(model, device_id):
    return model.model.get_model_for_device(device_id)


def predict(file_paths, device_ids, model, use_cuda=True, batch_size=64):
    """(list of [n_classes] logits tensors in input order, class order); files grouped by device."""
    assert len(file_paths) == len(device_ids), "one device id per file"
    device = torch.device("cuda" if use_cuda and torch.cuda.is_available() else "cpu")
    model.to(device)
    inputs = load_inputs(file_paths, device_ids, model)
    groups = defaultdict(list)
    for i, d in enumerate(device_ids):
        groups[d].append(i)
    outputs = [None] * len(inputs)
    with torch.no_grad():
        for d, rows in groups.items():
            net = get_model_for_device(model, d)
            for i in rows:  # one file per forward pass: no padding to other files' lengths
                outputs[i] = net(inputs[i].to(device)).float().cpu()[0]
    return outputs, list(model.class_order)
