//! Outbox, MQTT and HTTP upload to the provincial system (R7, R8). Not built yet.
