"""HTTP service: ``opencrop serve`` (Starlette on uvicorn, a pool of worker processes; ``docs/service.md``).

Needs the ``serve`` extra (``pip install 'opencrop[serve]'``); importing this package alone imports none of it.
"""
