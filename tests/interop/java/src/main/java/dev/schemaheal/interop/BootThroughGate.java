package dev.schemaheal.interop;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.HexFormat;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.springframework.kafka.core.DefaultKafkaConsumerFactory;
import org.springframework.kafka.core.DefaultKafkaProducerFactory;
import org.springframework.kafka.listener.ContainerProperties;
import org.springframework.kafka.listener.KafkaMessageListenerContainer;
import org.springframework.kafka.requestreply.ReplyingKafkaTemplate;
import org.springframework.kafka.requestreply.RequestReplyFuture;
import org.springframework.kafka.support.KafkaHeaders;
import org.springframework.kafka.support.TopicPartitionOffset;

/**
 * A Spring service booting through the schemaheal gate with Spring Kafka's own request/reply:
 * {@link ReplyingKafkaTemplate} adds kafka_replyTopic, kafka_replyPartition (its reply container
 * reads one assigned partition) and a binary kafka_correlationId, and completes the future only
 * for a reply that echoes that correlation id on that partition.
 *
 * <p>Arguments: bootstrap-servers request-topic reply-topic reply-partition body-file database
 * ce-id timeout-seconds. Prints what it sent and received as key=value lines; exits 0 when a
 * reply came, 1 when none did.
 */
public final class BootThroughGate {

    private BootThroughGate() {
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String requestTopic = args[1];
        String replyTopic = args[2];
        int replyPartition = Integer.parseInt(args[3]);
        String body = Files.readString(Path.of(args[4]));
        String database = args[5];
        String ceId = args[6];
        long timeoutS = Long.parseLong(args[7]);

        DefaultKafkaProducerFactory<String, String> producers = new DefaultKafkaProducerFactory<>(Map.of(
                ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap,
                ProducerConfig.ACKS_CONFIG, "all",
                ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class,
                ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class));
        DefaultKafkaConsumerFactory<String, String> consumers = new DefaultKafkaConsumerFactory<>(Map.of(
                ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap,
                ConsumerConfig.GROUP_ID_CONFIG, "interop-spring-" + ceId,
                ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "latest",
                ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class,
                ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class));
        ContainerProperties properties = new ContainerProperties(
                new TopicPartitionOffset(replyTopic, replyPartition));
        KafkaMessageListenerContainer<String, String> replies =
                new KafkaMessageListenerContainer<>(consumers, properties);
        ReplyingKafkaTemplate<String, String, String> template = new ReplyingKafkaTemplate<>(producers, replies);
        template.setSharedReplyTopic(true);
        template.start();
        try {
            if (!template.waitForAssignment(Duration.ofSeconds(timeoutS))) {
                System.err.println("the reply container got no partition assigned");
                System.exit(1);
            }
            ProducerRecord<String, String> request = new ProducerRecord<>(requestTopic, database, body);
            header(request, "ce_specversion", "1.0");
            header(request, "ce_id", ceId);
            header(request, "ce_source", "/services/orchestrator/spring-pod");
            header(request, "ce_type", "dev.schemaheal.service.starting.v1");
            header(request, "ce_time", Instant.now().toString());
            header(request, "ce_subject", database);
            header(request, "content-type", "application/json");
            RequestReplyFuture<String, String, String> future =
                    template.sendAndReceive(request, Duration.ofSeconds(timeoutS));
            ConsumerRecord<String, String> reply = future.get(timeoutS + 5, TimeUnit.SECONDS);
            System.out.println("sent.correlation=" + hex(request.headers().lastHeader(KafkaHeaders.CORRELATION_ID)));
            System.out.println("reply.correlation=" + hex(reply.headers().lastHeader(KafkaHeaders.CORRELATION_ID)));
            System.out.println("reply.topic=" + reply.topic());
            System.out.println("reply.partition=" + reply.partition());
            System.out.println("reply.value=" + reply.value());
        }
        finally {
            template.stop();
            template.destroy();
            producers.destroy();
        }
    }

    private static void header(ProducerRecord<String, String> record, String name, String value) {
        record.headers().add(name, value.getBytes(StandardCharsets.UTF_8));
    }

    private static String hex(Header header) {
        return header == null ? "" : HexFormat.of().formatHex(header.value());
    }
}
