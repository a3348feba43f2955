"""Real series that ship inside statsmodels, read offline (``data=co2``, ``data=sunspots``,
``data=macrodata``): each as a table with a ``date`` column, gaps left in for data.missing to handle."""

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


def _co2() -> "pd.DataFrame":
    """Weekly Mauna Loa CO2 in ppm, March 1958 to December 2001: 2,284 weeks, 59 of them missing."""
    from statsmodels.datasets import co2

    data = co2.load_pandas().data
    return data.rename_axis("date").reset_index()


def _sunspots() -> "pd.DataFrame":
    """Yearly mean sunspot number, 1700 to 2008 (309 years, an 11-year cycle of changing height)."""
    import pandas as pd
    from statsmodels.datasets import sunspots

    data = sunspots.load_pandas().data
    dates = pd.to_datetime(data["YEAR"].astype(int).astype(str), format="%Y")
    return pd.DataFrame({"date": dates, "sunactivity": data["SUNACTIVITY"]})


def _macrodata() -> "pd.DataFrame":
    """US macroeconomic quarters, 1959 to 2009 (203 quarters, 12 series: real GDP, consumption, …)."""
    import pandas as pd
    from statsmodels.datasets import macrodata

    data = macrodata.load_pandas().data
    quarters = data["year"].astype(int).astype(str) + "Q" + data["quarter"].astype(int).astype(str)
    dates = pd.PeriodIndex(quarters, freq="Q").to_timestamp()
    return pd.concat([pd.DataFrame({"date": dates}), data.drop(columns=["year", "quarter"])], axis=1)


BUNDLED: dict[str, Callable[[], "pd.DataFrame"]] = {
    "co2": _co2,
    "sunspots": _sunspots,
    "macrodata": _macrodata,
}


def bundled_frame(name: str) -> "pd.DataFrame":
    """The bundled dataset ``name`` as a table (SeriesDataModule checks the name and the packages)."""
    return BUNDLED[name]()
