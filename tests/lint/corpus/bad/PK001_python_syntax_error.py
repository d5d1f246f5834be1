from promptkit import PromptTemplate


def build(:
    return PromptTemplate("x")
