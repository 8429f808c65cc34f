"""paramverify: prove how far a network's outputs and labels move when its parameters move.

Start with :mod:`paramverify.api` (``make_problem``, ``bound``, ``verify``) or
the ``paramverify`` command.
"""

__version__ = "0.1.0"
