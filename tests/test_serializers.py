"""The hot paths' serializers copy their declared fields per call and leave the declared ones alone;
a field their shallow copies would share is refused when the class is declared."""

import re

import pytest
from rest_framework import serializers

from accounts.serializers import DetailSerializer, RefreshSerializer, UserSerializer


@pytest.mark.parametrize("serializer_class", [RefreshSerializer, UserSerializer])
def test_each_call_binds_copies_of_the_fields_and_never_the_declared_ones(serializer_class):
    first, second = serializer_class(data={}), serializer_class(data={})
    for name, declared in serializer_class._declared_fields.items():
        assert first.fields[name] is not declared and first.fields[name] is not second.fields[name]
        assert first.fields[name].parent is first and second.fields[name].parent is second
        assert declared.field_name is None and declared.parent is None
        assert type(first.fields[name]) is type(declared)


@pytest.mark.parametrize(
    "field, named",
    [
        (lambda: serializers.ListField(child=serializers.CharField()), "(ListField) holds a field"),
        (lambda: serializers.DictField(child=serializers.IntegerField()), "(DictField) holds a field"),
        (lambda: DetailSerializer(many=True), "(ListSerializer) is a nested serializer"),
        (lambda: DetailSerializer(), "(DetailSerializer) is a nested serializer"),
        (
            lambda: serializers.PrimaryKeyRelatedField(many=True, read_only=True),
            "(ManyRelatedField) holds a field of its own (child_relation)",
        ),
    ],
)
def test_a_shallow_copied_serializer_refuses_a_field_that_holds_another_when_it_is_declared(field, named):
    # What the README invites: a project's own refresh serializer, named in SIMPLE_JWT.
    with pytest.raises(TypeError, match=re.escape(f"ProjectRefreshSerializer.extra {named}")) as refused:

        class ProjectRefreshSerializer(RefreshSerializer):
            extra = field()

    assert "ShallowFieldCopiesMixin" in str(refused.value)


def test_a_shallow_copied_serializer_takes_leaf_fields_and_binds_them_per_call():
    class ProjectRefreshSerializer(RefreshSerializer):
        device = serializers.CharField(required=False)
        remember = serializers.BooleanField(default=False)
        greeting = serializers.SerializerMethodField()

        def get_greeting(self, issued) -> str:
            return f"hello {self.context['name']}"

    first = ProjectRefreshSerializer(data={"device": "phone"}, context={"name": "first"})
    second = ProjectRefreshSerializer(data={}, context={"name": "second"})
    assert first.is_valid() and second.is_valid()
    assert (first.validated_data["device"], first.validated_data["remember"]) == ("phone", False)
    assert first.fields["greeting"].to_representation(None) == "hello first"
    assert second.fields["greeting"].to_representation(None) == "hello second"
    assert ProjectRefreshSerializer._declared_fields["greeting"].parent is None
