"""Loaded models, cached by (name, device, dtype, bits), and the names the model lists offer."""
import threading
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass

from model_utils.errors import UserError
from model_utils.loading import load_model


@dataclass
class Settings:
    base: str = "gsm8k-base"
    cllm: str = "gsm8k-cllm"
    device: str = "auto"
    dtype: str = "auto"
    bits: int | None = None
    trust_remote_code: bool = False


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
        s = self.settings
        key = (name, s.device, s.dtype, s.bits)
        if key not in self.cache:
            self.cache[key] = load_model(name, device=s.device, dtype=s.dtype, bits=s.bits,
                                         trust_remote_code=s.trust_remote_code)
            while len(self.cache) > self.capacity:
                self.cache.popitem(last=False)
        self.cache.move_to_end(key)
        return self.cache[key]

    def choices(self) -> list[str]:
        return list(dict.fromkeys([self.settings.base, self.settings.cllm, *self.trained]))

    def add_trained(self, path: str) -> None:
        if path not in self.trained:
            self.trained.append(path)
