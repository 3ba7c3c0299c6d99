"""Orchestration, in rooms with one direction between them (docs/architecture.md):
``analysis`` > ``batch`` > ``run`` > (``config`` | ``figures``). It builds worlds and learners
through the registries and is the only layer that loads them."""
