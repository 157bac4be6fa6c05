"""fastnst in the browser: the page (``static/``), the ONNX Runtime Web files it loads (``runtime``), the
site's contents (``site``) and the local server (``server``) behind ``fastnst web``."""
