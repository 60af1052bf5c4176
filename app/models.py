"""Loaded models, cached by (name, device, dtype, bits), and the names the model lists offer."""
import os
import threading
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from model_utils.decoding import decode_text, warm_up
from model_utils.errors import UserError
from model_utils.loading import EMBEDDED, decoding_threads, load_model
from model_utils.records import DecodeResult


@dataclass
class Settings:
    base: str = "smollm2-135m-instruct"
    cllm: str = "smollm2-135m-cllm"
    device: str = "auto"
    dtype: str = "auto"
    bits: int | None = None
    trust_remote_code: bool = False
    extra: tuple[str, ...] = ()  # more models the launcher allows (--models)
    free_models: bool = True  # any hub name or server path may be typed (the default on 127.0.0.1 only)
    threads: int | None = None  # CPU threads; None: loading.decoding_threads of the loaded models


def short_name(name: str) -> str:
    """A model's list entry without its folders."""
    return os.path.basename(name.rstrip("/")) or name


class Models:
    """A small least-recently-used cache of (model, tokenizer) pairs plus the models trained in the app."""

    def __init__(self, settings: Settings, capacity: int = 4):
        self.settings, self.capacity = settings, capacity
        self.cache: OrderedDict[tuple, tuple] = OrderedDict()
        self.trained: list[str] = []
        self.device = threading.Lock()  # held by whatever is running a model: one job at a time
        self.holder = ""

    @contextmanager
    def turn(self, what: str, wait: bool = False):
        """Hold the device for one job; without `wait`, refuse at once while another job holds it."""
        if not self.device.acquire(blocking=wait):
            raise UserError(f"The model device is busy {self.holder}: try again when it is done.")
        self.holder = what
        try:
            yield
        finally:
            self.device.release()

    def get(self, name: str | None):
        """(model, tokenizer) for a list entry, a typed hub name or a local path."""
        name = (name or "").strip()
        if not name:
            raise UserError("Choose a model: pick one from the list or type a name or path.")
        if not (self.settings.free_models or name in self.choices()):
            raise UserError("That model is not one of this app's models: choose one from the list.")
        s = self.settings
        key = (name, s.device, s.dtype, s.bits)
        if key not in self.cache:
            self.cache[key] = load_model(name, device=s.device, dtype=s.dtype, bits=s.bits,
                                         trust_remote_code=s.trust_remote_code)
            warm_up(self.cache[key][0])
            while len(self.cache) > self.capacity:
                self.cache.popitem(last=False)
            torch.set_num_threads(s.threads or decoding_threads([m for m, _ in self.cache.values()]))
        self.cache.move_to_end(key)
        return self.cache[key]

    def decode(self, name: str, prompt: str, **options) -> DecodeResult:
        """Decode a prompt text with a named model (see model_utils.decoding.decode for the options)."""
        model, tokenizer = self.get(name)
        return decode_text(model, tokenizer, prompt, **options)

    def choices(self) -> list[str]:
        s = self.settings
        return list(dict.fromkeys([s.base, s.cllm, *EMBEDDED, *s.extra, *self.trained]))

    def add_trained(self, path: str) -> None:
        """List a model trained in the app (a copy loaded before it was trained again is dropped)."""
        self.forget(path)
        self.trained.append(path)

    def forget(self, name: str) -> None:
        """Drop a trained model from the lists and every loaded copy of it."""
        self.trained = [t for t in self.trained if t != name]
        for key in [k for k in self.cache if k[0] == name]:
            del self.cache[key]
