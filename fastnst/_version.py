"""The package version, in a module of its own.

Modules inside fastnst (checkpoint, onnx_format) import it from here rather than from the
package ``__init__``, so nothing inside the package imports upwards; pyproject.toml reads it
from here too.
"""

__version__ = "0.1.0"
