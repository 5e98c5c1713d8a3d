"""The pagination review's walks on MongoDB, through the real app (the HTTP suite leaves the
MongoDB test server out unless SESSIONMETER_TEST_EVERY_STORE is set): a MongoDB sort is not
stable without a tiebreaker, and its cursors' `$or` must match ties exactly."""

from collections.abc import Iterator

import pytest

from tests.app_client import Api, serve_app
from tests.conftest import Databases
from tests.http import test_pagination_review as review


@pytest.fixture
def api(databases: Databases) -> Iterator[Api]:
    """The real app on a clean MongoDB database."""
    with databases.fresh("mongodb") as url:
        yield from serve_app(url)


def test_sessions_that_tie_on_started_at_walk_once_each_newest_first_on_mongodb(api: Api) -> None:
    review.test_a_walk_of_sessions_started_in_one_millisecond_lists_each_once_newest_first(api)


def test_errors_that_tie_on_at_walk_once_each_newest_first_on_mongodb(api: Api) -> None:
    review.test_a_walk_of_errors_reported_in_one_millisecond_lists_each_once_newest_first(api)


def test_sales_that_tie_on_occurred_at_walk_once_each_newest_first_on_mongodb(api: Api) -> None:
    review.test_a_walk_of_sales_made_in_one_millisecond_lists_each_once_newest_first(api)


def test_a_ledger_that_ties_on_created_at_walks_once_each_oldest_first_on_mongodb(
    api: Api,
) -> None:
    review.test_a_walk_of_a_ledger_written_in_one_millisecond_lists_each_entry_once_oldest_first(
        api
    )


def test_events_walk_once_each_in_sequence_order_on_mongodb(api: Api) -> None:
    review.test_a_walk_of_a_sessions_events_lists_each_once_in_sequence_order(api)


def test_sessions_written_during_a_walk_are_never_listed_twice_nor_skipped_on_mongodb(
    api: Api,
) -> None:
    review.test_sessions_started_ended_or_deleted_during_a_walk_are_never_listed_twice_nor_skipped(
        api
    )


def test_sessions_that_stop_matching_a_filter_mid_walk_leave_the_others_on_mongodb(
    api: Api,
) -> None:
    review.test_sessions_that_stop_matching_a_filter_during_a_walk_leave_the_others_unskipped(api)


def test_errors_and_sales_written_during_a_walk_are_listed_once_on_mongodb(api: Api) -> None:
    review.test_errors_and_sales_recorded_during_a_walk_are_never_listed_twice_nor_skipped(api)


def test_ledger_entries_written_during_a_walk_are_listed_once_on_mongodb(api: Api) -> None:
    review.test_ledger_entries_written_during_a_walk_are_never_listed_twice_nor_skipped(api)


def test_a_limit_outside_1_to_500_is_422_naming_limit_on_mongodb(api: Api) -> None:
    review.test_a_limit_outside_1_to_500_or_not_an_integer_is_422_naming_limit(api)


def test_limits_of_1_and_500_and_a_repeated_limit_are_served_on_mongodb(api: Api) -> None:
    review.test_limits_of_1_and_500_and_a_repeated_limit_are_served(api)


def test_a_tampered_cursor_is_422_naming_cursor_on_mongodb(api: Api) -> None:
    review.test_a_tampered_cursor_is_422_naming_cursor_never_a_500(api)


def test_foreign_cursors_never_show_another_tenants_data_on_mongodb(api: Api) -> None:
    review.test_a_cursor_of_another_route_filter_or_tenant_never_shows_another_tenants_data(api)


def test_a_sessions_cursor_from_other_filters_pages_what_they_match_on_mongodb(
    api: Api,
) -> None:
    review.test_a_sessions_cursor_from_other_filters_pages_only_what_the_filters_match(api)


def test_a_ledger_cursor_is_where_the_last_entry_stands_on_mongodb(api: Api) -> None:
    review.test_a_ledger_cursor_is_where_the_last_entry_stands_and_names_no_other_subject(api)
