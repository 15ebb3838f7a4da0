"""hf-fiqa: no-reference face image quality assessment on the Hugging Face stack."""

__version__ = "0.1.0"
