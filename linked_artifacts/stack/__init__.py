"""The local stack: real Kafka (KRaft) and Apicurio Registry as JVM processes, started by the project."""
