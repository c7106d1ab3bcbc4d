"""The migration toolkit: what pipeline jobs call (`pt migrate`, `pt scaffold`, ...).

Database access through SQLAlchemy 2 Core; bulk writes into PostgreSQL with COPY (psycopg 3).
"""
