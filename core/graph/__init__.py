"""The graph wing: models with several inputs and outputs and layers shared between places.

`symbolic.py` holds the symbolic values (`lamina.Input` and what calling a layer on one gives);
`network.py` the Graph that a `Model(inputs=..., outputs=...)` runs forward and backward;
`structure.py` the data that follows a model's inputs and outputs (one array, a list, a dict);
`block.py` GraphBlock, the base class of layers whose inside is such a graph.
"""
