from promptkit import Client


def make_client(model: str) -> Client:
    # A value holding the model's control-token text is refused, naming the variable.
    return Client.embedded(model, control_tokens="reject")
