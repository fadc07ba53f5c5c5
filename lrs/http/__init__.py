"""The HTTP layer: xAPI resources on FastAPI/Starlette, translating HTTP to use cases."""
