"""Alerts: run outcomes and system events sent by email, SMS gateway and webhook.

Services build an `Alert` (`run_alert`, `system_alert`) and hand it to an
`AlertSender`, which throttles, queues and sends it off the caller's path.
"""

from crontrio.common.alerts.base import Channel, ChannelError, PermanentChannelError
from crontrio.common.alerts.message import Alert, run_alert, system_alert
from crontrio.common.alerts.sender import AlertSender

__all__ = ["Alert", "AlertSender", "Channel", "ChannelError", "PermanentChannelError", "run_alert", "system_alert"]
