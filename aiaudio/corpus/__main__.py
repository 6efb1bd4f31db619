"""``python -m aiaudio.corpus OUT``: build the real-audio corpus (see :mod:`aiaudio.corpus.build`)."""
import sys

from aiaudio.corpus.build import main

sys.exit(main())
