"""Detectors and the blind benchmark: one module per detector, each registered by name.

Importing the package registers every built-in detector; `make_detector(name, **params)`
builds one. A new detector is a module with one `Detector` subclass under
`@register_detector("name")`, imported here.
"""

from detectors.base import DETECTORS, Detector, make_detector, register_detector
from detectors import (  # noqa: F401  (imported for their registrations)
    activation_clustering,
    behaviour_diff,
    noise_injection,
    probe_cue_contrast,
    probe_defection,
    random_baseline,
    spectral_signature,
    trigger_search,
)

__all__ = ["DETECTORS", "Detector", "make_detector", "register_detector"]
