"""Inserting many model instances fast: COPY on PostgreSQL with ids drawn from the table's sequence up front,
bulk_create elsewhere. Django's bulk_create builds one parameter per cell, which for wide rows costs more in SQL
compilation and query parsing than the database spends storing them (2,000 leads: ~2 s against ~0.1 s)."""

from django.db import connection
from django.db.models.expressions import DatabaseDefault


def insert(objs, *, using_copy=None):
    """Insert unsaved instances of one model and set their primary keys; returns them."""
    objs = list(objs)
    if not objs:
        return objs
    model = type(objs[0])
    if using_copy is None:
        using_copy = connection.vendor == "postgresql"
    if not using_copy:
        return model.objects.bulk_create(objs, batch_size=500)
    meta = model._meta
    quote = connection.ops.quote_name
    fields = list(meta.concrete_fields)
    converters = [_converter(field) for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [meta.db_table, meta.pk.column, len(objs)],
        )
        for obj, (pk,) in zip(objs, cursor.fetchall(), strict=True):
            setattr(obj, meta.pk.attname, pk)
        columns = ", ".join(quote(field.column) for field in fields)
        with cursor.cursor.copy(f"COPY {quote(meta.db_table)} ({columns}) FROM STDIN") as copy:  # noqa: S608 - names from the model
            for obj in objs:
                copy.write_row([convert(obj) for convert in converters])
    for obj in objs:
        obj._state.adding = False
        obj._state.db = connection.alias
    return objs


def _converter(field):
    """obj → the value COPY writes for this field: the attribute itself where psycopg adapts it, else prepared."""
    from django.db import models
    from psycopg.types.json import Jsonb

    attname = field.attname
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return lambda obj: field.pre_save(obj, True)
    plain = (
        models.CharField,
        models.TextField,
        models.IntegerField,
        models.BigIntegerField,
        models.FloatField,
        models.BooleanField,
        models.DateTimeField,
        models.DateField,
        models.DecimalField,
        models.UUIDField,
        models.ForeignKey,
    )

    def value(obj):
        found = getattr(obj, attname)
        if isinstance(found, DatabaseDefault):
            found = getattr(field.db_default, "value", field.db_default)
        return found

    if isinstance(field, models.JSONField):
        return lambda obj: Jsonb(value(obj))
    if type(field).__module__.startswith("django.db.models") and isinstance(field, plain):
        return value
    return lambda obj: field.get_db_prep_save(value(obj), connection)
