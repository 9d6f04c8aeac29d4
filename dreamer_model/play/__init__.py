"""``dreamer-train play``: a local web page to play inside a trained world model with the keyboard and mouse.

``world`` loads and cross-checks the world model, the decoder and the store; ``controls`` maps the store's
action space to keys; ``messages`` checks what the page sends; ``latest`` keeps one action per tick;
``session`` generates (K steps, rolling K/V cache); ``recording`` encodes what was shown; ``server`` serves it.
"""

from .server import PlayOptions, bind, serve
from .session import PlaySession
from .world import World, load_world

__all__ = ["PlayOptions", "PlaySession", "World", "bind", "load_world", "serve"]
