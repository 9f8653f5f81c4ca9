"""The worker service: consumes ``service.starting``, heals, replies on ``schema.healed``."""
