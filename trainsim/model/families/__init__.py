"""Family readers for Hugging Face configs, grouped by architecture (see :mod:`trainsim.model.hf`)."""
