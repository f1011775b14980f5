"""`/api/v1/keys`: the management API for API keys. Thin: every change goes through apikeys.services."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.net import client_ip
from apikeys import selectors, services
from apikeys.api_access import api_caller
from apikeys.errors import ApiKeyError
from apikeys.models import ApiKey
from apikeys.secrecy import uncacheable
from apikeys.serializers import (
    ApiKeyCreateSerializer,
    ApiKeyRotateSerializer,
    ApiKeySerializer,
    ApiKeyUpdateSerializer,
    IssuedKeySerializer,
)


def _issued(issued: services.IssuedKey) -> Response:
    """201 with the new key and its secret, which no cache may keep."""
    data = dict(IssuedKeySerializer(issued.key).data)
    data["secret"] = issued.secret
    return uncacheable(Response(data, status=status.HTTP_201_CREATED))


def _field_error(error: ApiKeyError) -> ValidationError:
    return ValidationError({error.field or "non_field_errors": [str(error)]})


class ApiKeyViewSet(viewsets.ViewSet):
    """API keys of one organization. Members read; owners, admins and `manage` keys change."""

    serializer_class = ApiKeySerializer
    lookup_value_converter = "int"
    queryset = ApiKey.objects.none()  # for the schema generator only: every read goes through the selectors

    def _key(self, request: Request, pk: str | None) -> ApiKey:
        caller = api_caller(request)
        try:
            key_id = int(pk or "")
        except ValueError:
            raise NotFound("No such key.") from None
        key = selectors.apikey_for_organization(organization=caller.organization, key_id=key_id)
        if key is None:
            raise NotFound("No such key.")
        return key

    @extend_schema(responses=ApiKeySerializer(many=True))
    def list(self, request: Request) -> Response:
        caller = api_caller(request)
        keys = selectors.apikeys_for_organization(organization=caller.organization)
        return Response(ApiKeySerializer(keys, many=True).data)

    @extend_schema(request=ApiKeyCreateSerializer, responses={201: IssuedKeySerializer})
    def create(self, request: Request) -> Response:
        caller = api_caller(request)
        caller.require_manage()
        serializer = ApiKeyCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            issued = services.apikey_issue(
                organization=caller.organization, actor=caller.actor, ip=client_ip(request), **serializer.validated_data
            )
        except ApiKeyError as error:
            raise _field_error(error) from None
        return _issued(issued)

    @extend_schema(responses=ApiKeySerializer)
    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        return Response(ApiKeySerializer(self._key(request, pk)).data)

    @extend_schema(request=ApiKeyUpdateSerializer, responses=ApiKeySerializer)
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        key = self._key(request, pk)
        caller = api_caller(request)
        caller.require_manage()
        serializer = ApiKeyUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            key = services.apikey_update(
                key=key, actor=caller.actor, ip=client_ip(request), **serializer.validated_data
            )
        except ApiKeyError as error:
            raise _field_error(error) from None
        return Response(ApiKeySerializer(key).data)

    @extend_schema(request=None, responses={200: ApiKeySerializer})  # the revoked key, not an empty 204
    def destroy(self, request: Request, pk: str | None = None) -> Response:
        """Revoke the key (keys are never deleted: their usage history stays attributable)."""
        return self.revoke(request, pk)

    @extend_schema(request=None, responses=ApiKeySerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str | None = None) -> Response:
        key = self._key(request, pk)
        caller = api_caller(request)
        caller.require_manage()
        key = services.apikey_revoke(key=key, actor=caller.actor, ip=client_ip(request))
        return Response(ApiKeySerializer(key).data)

    @extend_schema(request=ApiKeyRotateSerializer, responses={201: IssuedKeySerializer})
    @action(detail=True, methods=["post"])
    def rotate(self, request: Request, pk: str | None = None) -> Response:
        key = self._key(request, pk)
        caller = api_caller(request)
        caller.require_manage()
        serializer = ApiKeyRotateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            issued = services.apikey_rotate(
                key=key, actor=caller.actor, grace=serializer.validated_data["grace"], ip=client_ip(request)
            )
        except ApiKeyError as error:
            raise _field_error(error) from None
        return _issued(issued)
