"""Device models, one file each, registered in `DEVICE_MODELS` on import."""

from cotenant.models.accelerators.devices import edgetpu_fcfs, gpu_ps, mps

__all__ = ["edgetpu_fcfs", "gpu_ps", "mps"]
