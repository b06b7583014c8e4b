from django import template
from django.utils.safestring import SafeString
from plotly.graph_objects import Figure

from core.charts import chart_html

register = template.Library()


@register.simple_tag
def plotly_chart(figure: Figure, title: str) -> SafeString:
    return chart_html(figure, title=title)
