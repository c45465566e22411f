"""The read model: what the API's GET routes and the studio's pages show, read one way.

Read functions take a pool or a connection (``paging.Db``) and return typed rows; lists
page by one rule (``paging.page_of``). The studio composes these; it holds no SQL.
"""
