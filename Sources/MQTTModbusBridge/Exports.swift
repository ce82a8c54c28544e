// The service is configured with the configuration module's types (`BridgeConfiguration`);
// importing MQTTModbusBridge alone is enough to run it.
@_exported import MQTTModbusBridgeConfiguration
