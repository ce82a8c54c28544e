#ifndef C_MOSQUITTO_SHIM_H
#define C_MOSQUITTO_SHIM_H

// libmosquitto's client API and the MQTT protocol constants (reason codes,
// MQTT 5 property identifiers) it uses.
#include <mosquitto.h>
#include <mqtt_protocol.h>

#endif
