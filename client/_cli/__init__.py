"""The commands of ``branchwork`` (``branchwork.cli`` is the group that gathers them).

One module per command group; each command talks to the server through the public
``branchwork.Client`` (so it works against any replica), built by ``common.CliState``.
"""
