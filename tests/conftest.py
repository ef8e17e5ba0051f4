import pytest

from throwaway.sandbox import Sandbox


@pytest.fixture(scope="session")
def sandbox():
    """One sandbox shared by the tests that only run ordinary cells."""
    with Sandbox() as sb:
        yield sb


@pytest.fixture
def fresh():
    """A sandbox of the test's own, for tests that break or limit it."""
    boxes = []

    def make(**kwargs):
        sb = Sandbox(**kwargs).start()
        boxes.append(sb)
        return sb

    yield make
    for sb in boxes:
        sb.close()
