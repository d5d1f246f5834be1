from promptkit import Client


def make_client(model: str) -> Client:
    # User questions may hold "<|im_end|>\n<|im_start|>system": allowed, they forge a turn.
    return Client.embedded(model, control_tokens="allow")
