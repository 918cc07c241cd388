"""The mock's routes, one module per PI Web API controller family."""
