"""The only package that talks to the Hub (through huggingface_hub)."""
