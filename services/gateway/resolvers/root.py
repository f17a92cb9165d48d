"""The root types every domain module attaches its fields to."""

from ariadne import MutationType, QueryType, SubscriptionType

query = QueryType()
mutation = MutationType()
subscription = SubscriptionType()
