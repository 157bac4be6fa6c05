"""fastnst: train and run feed-forward neural style transfer networks.

The Python API in one line each::

    from fastnst import Stylizer, TransformerNet, load_model, save_model
    Stylizer.from_file("candy.pth").stylize(Image.open("photo.jpg"))
    GatysOptimizer(GatysConfig(style_images=["starry.jpg"])).stylize(Image.open("photo.jpg"))  # no trained network
"""

__version__ = "0.1.0"  # first, so submodules can import it

from .checkpoint import load_model, save_model  # noqa: E402
from .errors import FastNSTError  # noqa: E402
from .gatys import GatysConfig, GatysOptimizer  # noqa: E402
from .model import ModelConfig, TransformerNet  # noqa: E402
from .stylizer import Stylizer  # noqa: E402

__all__ = ["FastNSTError", "GatysConfig", "GatysOptimizer", "ModelConfig", "Stylizer", "TransformerNet", "__version__", "load_model", "save_model"]
