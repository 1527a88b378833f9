"""Imported once, by the forkserver that every benchmark cell is forked from: seal first, then load.

The order matters. The seal (the audit hook, closed descriptors) goes up before any detector module is
imported, so not even a detector's import-time code runs unsealed; then the heavy libraries are
imported once here, so each fresh cell process starts in milliseconds instead of seconds.
"""

from detectors.benchmark.seal import seal_server

seal_server()

import torch  # noqa: E402,F401  (preloaded for every cell)
import transformers  # noqa: E402,F401
# transformers imports its model classes lazily, on first use: seconds in every cell unless done here.
from transformers import (AutoConfig, AutoModelForCausalLM, AutoTokenizer,  # noqa: E402,F401
                          PreTrainedTokenizerFast)
from transformers.models.llama import modeling_llama  # noqa: E402,F401
import transformers.generation  # noqa: E402,F401
from transformers import conversion_mapping  # noqa: E402

# transformers compiles its table of checkpoint conversions (~1,000 regular expressions, ~0.2 s) on a
# process's first model load: done here once, every cell inherits it instead of paying it (1,070 cells a run).
getattr(conversion_mapping, "get_checkpoint_conversion_mapping", lambda model_type: None)("llama")
# Each cell loads its model, and transformers drew a "Loading weights" bar for every load: ~750
# lines of a benchmark's output that said nothing (the scorer's own bar counts the cells).
transformers.utils.logging.disable_progress_bar()

from detectors.base import load_built_in_detectors  # noqa: E402
import detectors.benchmark.cell_task  # noqa: E402,F401
import detectors.subject  # noqa: E402,F401

load_built_in_detectors()
