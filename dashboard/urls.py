from django.urls import path

from . import views

urlpatterns = [
    path("", views.feed, name="feed"),
    path("exchanges/<int:pk>", views.exchange_detail, name="exchange"),
]
