"""Models: the sequence model (encoder -> core -> dropout -> head) and our own cells.

Adding a cell: a module here with the nn.LSTM calling convention, plus one conf/model/<name>.yaml whose
``cell`` is its import path.
"""
