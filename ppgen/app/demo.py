"""What `make demo` shows: the models of each data set's quick comparison.

A model is listed for a data set when its quick preset (``GenerativeModel.quick_presets``) meets the
demo's bars within the demo's time; the others stay in the full ``ppgen compare`` (README: which and why).
"""

__all__ = ["DEMO_MODELS"]

# data-set name -> registry names, in the order the report shows them; a data set that is not listed
# gets every applicable model that has a quick preset.
DEMO_MODELS: dict[str, list[str]] = {}
