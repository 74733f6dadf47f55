"""An interactive textbook on variational autoencoders, and the PyTorch library it builds"""

__version__ = "0.0.1"
