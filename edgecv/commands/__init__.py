"""One module per CLI command; each must import torch lazily inside the command body."""
