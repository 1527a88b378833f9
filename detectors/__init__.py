"""Detectors and the blind benchmark: one module per detector, each registered by name.

`make_detector(name, **params)` builds one; `load_built_in_detectors()` returns the registry with
every built-in detector loaded. A new detector is a module with one `Detector` subclass under
`@register_detector("name")` in a file of this folder, where the registry finds it (or in a module
of the user's own, passed to the benchmark as a plugin).
"""

from detectors.base import DETECTORS, Detector, load_built_in_detectors, make_detector, register_detector

__all__ = ["DETECTORS", "Detector", "load_built_in_detectors", "make_detector", "register_detector"]
