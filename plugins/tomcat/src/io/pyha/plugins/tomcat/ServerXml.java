package io.pyha.plugins.tomcat;

import java.io.IOException;
import java.nio.file.Path;
import javax.xml.XMLConstants;
import javax.xml.parsers.DocumentBuilder;
import javax.xml.parsers.DocumentBuilderFactory;
import javax.xml.parsers.ParserConfigurationException;
import org.w3c.dom.Element;
import org.xml.sax.SAXException;

/** The shutdown port and command of an instance, as its conf/server.xml declares them. */
record ServerXml(int shutdownPort, String shutdownCommand) {

    /**
     * Reads the root {@code <Server port=".." shutdown="..">} of {@code base}/conf/server.xml.
     * The port is -1 when it is disabled or not a plain number (a ${property}).
     */
    static ServerXml read(Path base) throws IOException {
        Path file = base.resolve("conf").resolve("server.xml");
        try {
            Element server = parser().parse(file.toFile()).getDocumentElement();
            String command = server.getAttribute("shutdown");
            return new ServerXml(parsePort(server.getAttribute("port")), command.isEmpty() ? "SHUTDOWN" : command);
        } catch (SAXException | ParserConfigurationException e) {
            throw new IOException("cannot parse " + file + ": " + e.getMessage(), e);
        }
    }

    private static DocumentBuilder parser() throws ParserConfigurationException {
        DocumentBuilderFactory factory = DocumentBuilderFactory.newInstance();
        // server.xml is trusted, but nothing in it needs entities or DTDs fetched from anywhere.
        factory.setFeature(XMLConstants.FEATURE_SECURE_PROCESSING, true);
        factory.setAttribute(XMLConstants.ACCESS_EXTERNAL_DTD, "");
        factory.setAttribute(XMLConstants.ACCESS_EXTERNAL_SCHEMA, "");
        factory.setExpandEntityReferences(false);
        return factory.newDocumentBuilder();
    }

    private static int parsePort(String text) {
        try {
            return Integer.parseInt(text.trim());
        } catch (NumberFormatException e) {
            return -1;
        }
    }
}
