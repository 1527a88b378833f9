"""The base model (embedded or any Hugging Face causal LM) and fine-tuning."""
