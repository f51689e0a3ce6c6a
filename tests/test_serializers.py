"""The hot paths' serializers copy their declared fields per call and leave the declared ones alone."""

import pytest

from accounts.serializers import RefreshSerializer, UserSerializer


@pytest.mark.parametrize("serializer_class", [RefreshSerializer, UserSerializer])
def test_each_call_binds_copies_of_the_fields_and_never_the_declared_ones(serializer_class):
    first, second = serializer_class(data={}), serializer_class(data={})
    for name, declared in serializer_class._declared_fields.items():
        assert first.fields[name] is not declared and first.fields[name] is not second.fields[name]
        assert first.fields[name].parent is first and second.fields[name].parent is second
        assert declared.field_name is None and declared.parent is None
        assert type(first.fields[name]) is type(declared)
